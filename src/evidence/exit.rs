//! What a container's exit code means, in one phrase.
//!
//! Codes above 128 are 128 + the signal that ended the process (the shell's and the container
//! runtime's convention); a few low codes have a conventional meaning (the shell's 126 and 127,
//! 2 for misuse of a shell builtin). Anything else is the program's own.

/// The signal an exit code stands for: 137 → 9 (SIGKILL). `None` for codes up to 128.
pub fn signal(code: i32) -> Option<i32> {
    (129..=128 + 64).contains(&code).then_some(code - 128)
}

/// The name of a signal: 9 → `SIGKILL`.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// The meaning of `code`, given the kubelet's `reason` for the termination (`OOMKilled`,
/// `Error`, `Completed`, `ContainerCannotRun`, ...).
pub fn meaning(code: i32, reason: Option<&str>) -> String {
    if reason == Some("OOMKilled") {
        return "killed by the kernel for exceeding its memory (OOMKilled, SIGKILL)".into();
    }
    match code {
        0 => "exited normally".into(),
        1 => "the program exited with a general error".into(),
        2 => "misuse of a shell builtin, or invalid arguments".into(),
        126 => "the command was found but could not be executed (permission or format)".into(),
        127 => "command not found".into(),
        128 => "invalid exit argument, or the runtime could not start the process".into(),
        137 => "killed with SIGKILL (out of memory, or not stopping in time)".into(),
        139 => "segmentation fault (SIGSEGV)".into(),
        143 => "terminated with SIGTERM (asked to stop)".into(),
        c => match signal(c) {
            Some(s) => match signal_name(s) {
                Some(name) => format!("killed by signal {s} ({name})"),
                None => format!("killed by signal {s}"),
            },
            None => "the program's own exit code".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_decode_to_their_conventional_meaning() {
        let cases: &[(i32, Option<&str>, &str)] = &[
            (0, Some("Completed"), "exited normally"),
            (1, Some("Error"), "general error"),
            (2, Some("Error"), "shell builtin"),
            (126, Some("Error"), "could not be executed"),
            (127, Some("Error"), "command not found"),
            (128, Some("ContainerCannotRun"), "could not start"),
            (137, Some("OOMKilled"), "OOMKilled"),
            (137, Some("Error"), "SIGKILL"),
            (139, Some("Error"), "SIGSEGV"),
            (143, Some("Error"), "SIGTERM"),
            (134, Some("Error"), "signal 6 (SIGABRT)"),
            (135, None, "signal 7 (SIGBUS)"),
            (170, None, "killed by signal 42"),
            (3, Some("Error"), "program's own"),
            (255, Some("Error"), "program's own"),
        ];
        for (code, reason, want) in cases {
            let got = meaning(*code, *reason);
            assert!(
                got.contains(want),
                "{code} {reason:?}: {got:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn only_codes_above_128_carry_a_signal() {
        assert_eq!(signal(128), None);
        assert_eq!(signal(1), None);
        assert_eq!(signal(137), Some(9));
        assert_eq!(signal(143), Some(15));
        assert_eq!(signal(192), Some(64));
        assert_eq!(signal(193), None);
        assert_eq!(signal(137).and_then(signal_name), Some("SIGKILL"));
    }
}
