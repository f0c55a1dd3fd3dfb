"""Telephony: ARI client, Stasis app, AMI, FastAGI, routing, the local PBX."""
