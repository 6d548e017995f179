//! An arbitrary `Range` header on an object of arbitrary size
//! (tests/properties/range.rs).
#![no_main]

#[path = "../../tests/properties/range.rs"]
mod range;

libfuzzer_sys::fuzz_target!(|input: (u64, &str)| {
    let (size, header) = input;
    range::range(header, size);
    // Small objects too: most sizes drawn from eight bytes are huge.
    range::range(header, size % 1024);
});
