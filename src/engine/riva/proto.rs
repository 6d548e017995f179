//! Code generated (build.rs) from the project's own Riva definitions in
//! `proto/riva/`: the `nvidia.riva` types and the `nvidia.riva.asr` service,
//! client and server (the server serves the fake Riva in the tests).
#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/nvidia.riva.rs"));

pub mod asr {
    include!(concat!(env!("OUT_DIR"), "/nvidia.riva.asr.rs"));
}
