"""The synthetic caller and the test phone: our own SIP UA and SDP, RTP through media/."""
