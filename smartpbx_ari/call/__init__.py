"""One call's conversation: the ear, turns, the answer, the HITL desk, and the ports to the PBX."""
