//! Plan → in-memory files → atomic write, or a --check diff against what is on disk.
