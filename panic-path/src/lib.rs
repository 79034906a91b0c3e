//! Not written yet (issue 4).

#![cfg_attr(not(test), no_std)]
