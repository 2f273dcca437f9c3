"""What every layer stands on: errors a user can fix, paths anywhere TensorFlow reaches,
writes that never leave half a file, and the memory the process may use."""
