//! Names of the 32 architectural exception vectors and the line the exception handler prints.

use core::fmt;

/// Short name of an exception vector (`#UD`, `#PF`, ...); `NMI` for 2, `reserved` for unassigned ones.
pub fn mnemonic(vector: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "reserved", "reserved",
        "reserved", "reserved", "reserved", "reserved", "#HV", "#VC", "#SX", "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("external")
}

/// Whether the CPU pushes an error code for this vector (the stub pushes a zero for the others).
pub fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// What the handler reports about one exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionReport {
    pub vector: u8,
    pub error_code: u64,
    pub rip: u64,
}

impl fmt::Display for ExceptionReport {
    /// `EXCEPTION vector=<n> (<#XX>) error=<hex> rip=<hex>`, the marker the emulator harness reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EXCEPTION vector={} ({}) error={:#x} rip={:#x}",
            self.vector,
            mnemonic(self.vector),
            self.error_code,
            self.rip
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_of_common_vectors() {
        assert_eq!(mnemonic(0), "#DE");
        assert_eq!(mnemonic(6), "#UD");
        assert_eq!(mnemonic(8), "#DF");
        assert_eq!(mnemonic(13), "#GP");
        assert_eq!(mnemonic(14), "#PF");
        assert_eq!(mnemonic(15), "reserved");
        assert_eq!(mnemonic(21), "#CP");
        assert_eq!(mnemonic(30), "#SX");
        assert_eq!(mnemonic(32), "external");
    }

    #[test]
    fn error_code_vectors() {
        let with_code: Vec<u8> = (0..32).filter(|&v| pushes_error_code(v)).collect();
        assert_eq!(with_code, vec![8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn report_line_format() {
        let report = ExceptionReport {
            vector: 14,
            error_code: 0x2,
            rip: 0x10_2a4f,
        };
        assert_eq!(
            report.to_string(),
            "EXCEPTION vector=14 (#PF) error=0x2 rip=0x102a4f"
        );
    }
}
