//! Exit status as a type.

/// How `vigil` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: nothing at or above `--fail-on` (or a command that found nothing to report).
    Success,
    /// 1: findings at or above `--fail-on`.
    Failure,
    /// 2: vigil itself failed: bad input, bad policy, I/O (and a scan that could not finish).
    Error,
    /// 3: `vigil scan` found only files it does not support (nothing was checked).
    Unsupported,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
            ExitStatus::Unsupported => 3,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
