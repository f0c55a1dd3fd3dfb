# The same Asterisk the sandbox provisions with debootstrap: Debian unstable's package,
# with the music on hold (CC-BY-SA 3.0) the operators' queue plays.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en \
      asterisk-moh-opsound-wav asterisk-moh-opsound-g722 sox \
 && rm -rf /var/lib/apt/lists/*
# The default class plays /var/lib/asterisk/moh (musiconhold.conf): the WAV tracks with
# their inaudible heads and fade-out tails cut (below -50 dBFS), as `smartpbx pbx up` does.
RUN mkdir -p /var/lib/asterisk/moh \
 && for f in /usr/share/asterisk/moh/*.wav; do \
      sox "$f" "/var/lib/asterisk/moh/${f##*/}" \
        silence 1 0.02 -50d reverse silence 1 0.02 -50d reverse; \
    done
# The queue's own prompts (callback offer), where `smartpbx pbx up` puts them too.
COPY asterisk-config/sounds/ /usr/share/asterisk/sounds/smartpbx/
# The rendered asterisk-config/ (secrets filled in) arrives in /etc/asterisk-smartpbx.
CMD ["sh", "-c", "cp /etc/asterisk-smartpbx/*.conf /etc/asterisk/ && exec asterisk -f -n -U root -G root"]
