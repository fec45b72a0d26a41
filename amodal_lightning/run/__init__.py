"""Run plumbing shared by the commands: config composition and checks, the command line, hardware and OpenMP
settings, checkpoints and their files, loggers and the end-of-run summary."""
