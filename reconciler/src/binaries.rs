//! Prebuilt binaries given on the command line (`--agent-binary ARCH=PATH`,
//! `--fleetform-binary ARCH=PATH`) for `plan` and `apply`, and the check that a binary
//! is a Linux ELF executable of the architecture it is given for (also applied to
//! `dist/`): a wrong file would only show up as a node whose service never starts.

use std::path::{Path, PathBuf};

use clap::Args;
use fleetform_core::instance::Arch;

/// The binaries for `plan` and `apply`. They take precedence over `dist/<arch>/`.
#[derive(Args, Debug, Clone, Default)]
pub struct BinaryArgs {
    /// A prebuilt fleetform-agent for the workers of an architecture (x86_64 or aarch64),
    /// uploaded to bin/ARCH/ in the store instead of dist/ARCH/fleetform-agent; repeatable.
    #[arg(long = "agent-binary", value_name = "ARCH=PATH", value_parser = parse_agent_binary)]
    pub agent: Vec<GivenBinary>,
    /// The same for the head's `fleetform` binary (the head's architecture).
    #[arg(long = "fleetform-binary", value_name = "ARCH=PATH", value_parser = parse_fleetform_binary)]
    pub fleetform: Vec<GivenBinary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GivenBinary {
    pub arch: Arch,
    pub path: PathBuf,
}

/// The binaries fleetform installs on nodes: the workers' agent and the head's reconciler.
pub const AGENT: &str = "fleetform-agent";
pub const FLEETFORM: &str = "fleetform";

impl BinaryArgs {
    /// The path given for `binary` (AGENT or FLEETFORM) on `arch`, if any.
    pub fn given(&self, binary: &str, arch: Arch) -> Option<&Path> {
        let list = if binary == AGENT { &self.agent } else { &self.fleetform };
        list.iter().find(|g| g.arch == arch).map(|g| g.path.as_path())
    }

    /// An architecture given twice for the same binary, as one sentence per flag.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, list) in [("--agent-binary", &self.agent), ("--fleetform-binary", &self.fleetform)] {
            for arch in [Arch::X86_64, Arch::Arm64] {
                let paths: Vec<String> = list.iter().filter(|g| g.arch == arch).map(|g| g.path.display().to_string()).collect();
                if paths.len() > 1 {
                    out.push(format!("{flag} names {} twice ({}): give one path per architecture", arch.uname(), paths.join(", ")));
                }
            }
        }
        out
    }
}

fn parse_agent_binary(value: &str) -> Result<GivenBinary, String> {
    parse_given(value, AGENT)
}

fn parse_fleetform_binary(value: &str) -> Result<GivenBinary, String> {
    parse_given(value, FLEETFORM)
}

/// `ARCH=PATH` with ARCH `x86_64` or `aarch64` (also `arm64`), and PATH an existing ELF
/// executable of that architecture. clap puts the flag before the message.
pub fn parse_given(value: &str, binary: &str) -> Result<GivenBinary, String> {
    let Some((arch, path)) = value.split_once('=') else {
        return Err(format!("expected ARCH=PATH, e.g. aarch64=target/aarch64-unknown-linux-gnu/release/{binary}"));
    };
    let arch = match arch {
        "x86_64" | "amd64" => Arch::X86_64,
        "aarch64" | "arm64" => Arch::Arm64,
        other => return Err(format!("unknown architecture `{other}`: use x86_64 or aarch64 (what `uname -m` prints on the node)")),
    };
    let path = PathBuf::from(path);
    check_binary(&path, arch)?;
    Ok(GivenBinary { arch, path })
}

/// The file exists and is a 64-bit little-endian ELF for `arch`; else why not, in a sentence.
pub fn check_binary(path: &Path, arch: Arch) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; 20];
    let n = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            Ok(n)
        })
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match elf_arch(&head[..n]) {
        Ok(found) if found == arch => Ok(()),
        Ok(found) => Err(format!(
            "{} is an {} executable, not {}: build it for {} (target {}-unknown-linux-gnu)",
            path.display(),
            found.uname(),
            arch.uname(),
            arch.uname(),
            arch.uname()
        )),
        Err(what) => Err(format!("{} is {what}, not a Linux executable for {}", path.display(), arch.uname())),
    }
}

/// The architecture an ELF header names (`e_machine`), or what the bytes are instead.
pub fn elf_arch(head: &[u8]) -> Result<Arch, String> {
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    if head.len() < 20 || head[..4] != *b"\x7fELF" {
        let what = match head {
            [b'#', b'!', ..] => "a script",
            [0xcf, 0xfa, 0xed, 0xfe, ..] | [0xfe, 0xed, 0xfa, 0xcf, ..] | [0xca, 0xfe, 0xba, 0xbe, ..] => "a macOS (Mach-O) binary",
            [b'M', b'Z', ..] => "a Windows binary",
            _ => "not an ELF file",
        };
        return Err(what.to_string());
    }
    if head[4] != 2 {
        return Err("a 32-bit ELF file".into());
    }
    let machine = match head[5] {
        1 => u16::from_le_bytes([head[18], head[19]]),
        _ => return Err("a big-endian ELF file".into()),
    };
    match machine {
        EM_X86_64 => Ok(Arch::X86_64),
        EM_AARCH64 => Ok(Arch::Arm64),
        other => Err(format!("an ELF file for machine {other} (neither x86_64 nor aarch64)")),
    }
}

/// `fake_elf` for the unit tests: the same file as the e2e tests'.
#[cfg(test)]
#[path = "../../tests/e2e/elf.rs"]
pub(crate) mod test_elf;

#[cfg(test)]
mod tests {
    use super::test_elf::fake_elf;
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        binaries: BinaryArgs,
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    #[test]
    fn flags_parse_per_architecture_and_refuse_the_wrong_file() {
        let dir = tempfile::tempdir().unwrap();
        let arm = write(dir.path(), "arm", &fake_elf(Arch::Arm64, b"agent"));
        let x86 = write(dir.path(), "x86", &fake_elf(Arch::X86_64, b"agent"));
        let cli = Cli::try_parse_from([
            "t",
            "--agent-binary",
            &format!("aarch64={arm}"),
            "--agent-binary",
            &format!("x86_64={x86}"),
            "--fleetform-binary",
            &format!("x86_64={x86}"),
        ])
        .unwrap();
        assert_eq!(cli.binaries.given(AGENT, Arch::Arm64), Some(Path::new(&arm)));
        assert_eq!(cli.binaries.given(AGENT, Arch::X86_64), Some(Path::new(&x86)));
        assert_eq!(cli.binaries.given(FLEETFORM, Arch::X86_64), Some(Path::new(&x86)));
        assert_eq!(cli.binaries.given(FLEETFORM, Arch::Arm64), None);
        assert!(cli.binaries.problems().is_empty());

        let err = |args: &[&str]| Cli::try_parse_from([&["t"], args].concat()).unwrap_err().to_string();
        let e = err(&["--agent-binary", &format!("aarch64={x86}")]);
        assert!(
            e.contains("for '--agent-binary <ARCH=PATH>'") && e.contains(&format!("{x86} is an x86_64 executable, not aarch64")),
            "{e}"
        );
        assert!(e.ends_with("build it for aarch64 (target aarch64-unknown-linux-gnu)\n\nFor more information, try '--help'.\n"), "{e}");
        let e = err(&["--agent-binary", &format!("arm={arm}")]);
        assert!(e.contains("unknown architecture `arm`: use x86_64 or aarch64"), "{e}");
        let e = err(&["--fleetform-binary", &arm]);
        assert!(e.contains("for '--fleetform-binary <ARCH=PATH>'") && e.contains("expected ARCH=PATH"), "{e}");
        let e = err(&["--agent-binary", "x86_64=/nonexistent/agent"]);
        assert!(e.contains("cannot read /nonexistent/agent"), "{e}");
        let script = write(dir.path(), "script", b"#!/bin/sh\necho hi\n");
        let e = err(&["--agent-binary", &format!("x86_64={script}")]);
        assert!(e.contains("is a script, not a Linux executable for x86_64"), "{e}");

        let twice =
            Cli::try_parse_from(["t", "--agent-binary", &format!("aarch64={arm}"), "--agent-binary", &format!("arm64={arm}")]).unwrap();
        assert_eq!(
            twice.binaries.problems(),
            [format!("--agent-binary names aarch64 twice ({arm}, {arm}): give one path per architecture")]
        );
    }

    #[test]
    fn elf_headers_are_read_for_their_machine() {
        assert_eq!(elf_arch(&fake_elf(Arch::X86_64, b"")), Ok(Arch::X86_64));
        assert_eq!(elf_arch(&fake_elf(Arch::Arm64, b"")), Ok(Arch::Arm64));
        assert_eq!(elf_arch(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]), Err("a macOS (Mach-O) binary".into()));
        assert_eq!(elf_arch(b"agent build 1"), Err("not an ELF file".into()));
        let mut arm32 = fake_elf(Arch::Arm64, b"");
        arm32[4] = 1;
        assert_eq!(elf_arch(&arm32), Err("a 32-bit ELF file".into()));
        let mut riscv = fake_elf(Arch::X86_64, b"");
        riscv[18] = 243;
        assert_eq!(elf_arch(&riscv), Err("an ELF file for machine 243 (neither x86_64 nor aarch64)".into()));
        // This test binary itself, when the machine is one of ours.
        if let Some(me) = Arch::of_this_machine() {
            let exe = std::env::current_exe().unwrap();
            assert_eq!(check_binary(&exe, me), Ok(()));
        }
    }
}
