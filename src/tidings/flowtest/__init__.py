"""Flow tests: `tidings test PATH` runs YAML-described event sequences through the real engine
on a virtual clock and compares the messages and runs with what the file expects."""
