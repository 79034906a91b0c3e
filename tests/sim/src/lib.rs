//! Host simulation of a multi-CPU machine (work in progress in this commit).
