# The SIP dispatcher of the cluster profile: Debian's Kamailio, as `smartpbx cluster up`
# runs it; its configuration is rendered by `smartpbx cluster render` (no credentials).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kamailio \
 && rm -rf /var/lib/apt/lists/*
CMD ["kamailio", "-DD", "-E", "-f", "/etc/smartpbx-cluster/kamailio/kamailio.cfg", \
     "-Y", "/etc/smartpbx-cluster/kamailio"]
