//! Local directory change log for Sluice: checksummed, fsynced, segmented append-only files
