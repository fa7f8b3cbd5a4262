//! Stand-ins for Linux binaries: a 64-byte ELF header naming the architecture, then
//! some bytes. Enough for fleetform's check (`reconciler/src/binaries.rs`), which reads
//! the header only. Shared by the e2e tests, the plan benchmark and the unit tests.

#![allow(dead_code)]

use fleetform_core::instance::Arch;

pub fn fake_elf(arch: Arch, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // ELF version 1
    out[16] = 2; // ET_EXEC
    let machine: u16 = match arch {
        Arch::X86_64 => 62,
        Arch::Arm64 => 183,
    };
    out[18..20].copy_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(body);
    out
}
