//! Guest ASIDs (APM Vol. 2, 15.16): 1..number_of_asids, never 0 (the host's), and the
//! TLB_CONTROL value that flushes one guest's translations.

use crate::vmcb::control::TlbControl;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// ASID allocation failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsidError {
    /// Every guest ASID is in use (or the CPU reports fewer than 2 ASIDs).
    Exhausted,
    /// The ASID is 0, out of range, or not allocated.
    NotAllocated(u32),
}

impl fmt::Display for AsidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted => f.write_str("no free guest ASID"),
            Self::NotAllocated(a) => write!(f, "ASID {a} is not an allocated guest ASID"),
        }
    }
}

/// Hands out guest ASIDs 1..number_of_asids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsidAllocator {
    used: Vec<bool>,
    flush_by_asid: bool,
}

impl AsidAllocator {
    /// `number_of_asids` from CPUID 8000_000Ah EBX, `flush_by_asid` from EDX bit 6.
    pub fn new(number_of_asids: u32, flush_by_asid: bool) -> Self {
        let n = usize::try_from(number_of_asids)
            .unwrap_or(usize::MAX)
            .min(1 << 20);
        Self {
            used: vec![false; n.saturating_sub(1)],
            flush_by_asid,
        }
    }

    /// The lowest free ASID.
    pub fn allocate(&mut self) -> Result<u32, AsidError> {
        let index = self
            .used
            .iter()
            .position(|u| !u)
            .ok_or(AsidError::Exhausted)?;
        self.used[index] = true;
        Ok(index as u32 + 1)
    }

    /// Returns an ASID. Flush its TLB entries ([`Self::flush_control`]) before reusing it.
    pub fn free(&mut self, asid: u32) -> Result<(), AsidError> {
        let slot = (asid as usize)
            .checked_sub(1)
            .and_then(|i| self.used.get_mut(i))
            .filter(|u| **u)
            .ok_or(AsidError::NotAllocated(asid))?;
        *slot = false;
        Ok(())
    }

    /// TLB_CONTROL that flushes one guest's translations on the next VMRUN: its own ASID when
    /// the CPU flushes by ASID, else the whole TLB.
    pub fn flush_control(&self) -> TlbControl {
        if self.flush_by_asid {
            TlbControl::FlushGuest
        } else {
            TlbControl::FlushAll
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asids_start_at_one_and_run_out() {
        let mut a = AsidAllocator::new(4, true);
        assert_eq!(a.allocate(), Ok(1));
        assert_eq!(a.allocate(), Ok(2));
        assert_eq!(a.allocate(), Ok(3));
        assert_eq!(a.allocate(), Err(AsidError::Exhausted));
        assert_eq!(a.free(2), Ok(()));
        assert_eq!(a.allocate(), Ok(2));
        assert_eq!(a.free(0), Err(AsidError::NotAllocated(0)));
        assert_eq!(a.free(4), Err(AsidError::NotAllocated(4)));
        assert_eq!(a.flush_control(), TlbControl::FlushGuest);
        assert_eq!(
            AsidAllocator::new(1, false).allocate(),
            Err(AsidError::Exhausted)
        );
        assert_eq!(
            AsidAllocator::new(0, false).allocate(),
            Err(AsidError::Exhausted)
        );
    }

    #[test]
    fn double_free_and_flush_without_flush_by_asid() {
        let mut a = AsidAllocator::new(16, false);
        let x = a.allocate().unwrap();
        a.free(x).unwrap();
        assert_eq!(a.free(x), Err(AsidError::NotAllocated(x)));
        assert_eq!(a.flush_control(), TlbControl::FlushAll);
    }
}
