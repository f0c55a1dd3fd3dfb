"""Media: sans-IO RTP, codecs, VAD and turn detection, paced player; thin UDP I/O."""
