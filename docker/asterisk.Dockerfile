# The same Asterisk the sandbox provisions with debootstrap: Debian unstable's package,
# with the music on hold (CC-BY-SA 3.0) the operators' queue plays.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en \
      asterisk-moh-opsound-wav asterisk-moh-opsound-g722 \
 && rm -rf /var/lib/apt/lists/*
# The queue's own prompts (callback offer), where `smartpbx pbx up` puts them too.
COPY asterisk-config/sounds/ /usr/share/asterisk/sounds/smartpbx/
# The rendered asterisk-config/ (secrets filled in) arrives in /etc/asterisk-smartpbx.
CMD ["sh", "-c", "cp /etc/asterisk-smartpbx/*.conf /etc/asterisk/ && exec asterisk -f -n -U root -G root"]
