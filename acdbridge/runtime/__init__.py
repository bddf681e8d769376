"""The daemon's runtime: supervised tasks, start-up, resume, the store writer, its own health."""
