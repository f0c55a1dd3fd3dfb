"""AI: speech to text, text to speech, the responder."""
