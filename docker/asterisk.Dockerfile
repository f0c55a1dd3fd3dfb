# The same Asterisk the sandbox provisions with debootstrap: Debian unstable's package.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en \
 && rm -rf /var/lib/apt/lists/*
# The rendered asterisk-config/ (secrets filled in) arrives in /etc/asterisk-smartpbx.
CMD ["sh", "-c", "cp /etc/asterisk-smartpbx/*.conf /etc/asterisk/ && exec asterisk -f -n -U root -G root"]
