"""Telephony: ARI client, Stasis app, the local PBX, SIP for the synthetic caller."""
