"""The server's tools, apart from the server itself: the demo, the evaluations, the benchmarks that drive the
real server process (replay, keystrokes, typists), one-shot `complete`, and what they show at a terminal."""
