use super::*;
use std::collections::BTreeMap;
use vmx::hw::{InveptKind, InvvpidKind};

/// A CPU model: MSRs, CR0/CR4, and a log of the VMX instructions executed.
#[derive(Default)]
struct FakeCpu {
    msrs: BTreeMap<u32, u64>,
    cr0: u64,
    cr4: u64,
    vmxon_result: Option<VmxInstructionError>,
    calls: Vec<String>,
}

impl FakeCpu {
    /// Values of the Bochs corei7_skylake_x model seen in the emulator (true controls, EPT+VPID).
    fn skylake_like(feature_control: u64) -> Self {
        let msrs = BTreeMap::from([
            (msr::IA32_FEATURE_CONTROL, feature_control),
            (msr::IA32_VMX_BASIC, 0x00DA_0400_0000_0004),
            (msr::IA32_VMX_CR0_FIXED0, 0x8000_0021),
            (msr::IA32_VMX_CR0_FIXED1, 0xFFFF_FFFF),
            (msr::IA32_VMX_CR4_FIXED0, 0x2000),
            (msr::IA32_VMX_CR4_FIXED1, 0x0037_67FF),
            (msr::IA32_VMX_TRUE_PINBASED_CTLS, 0x0000_00FF_0000_0016),
            (msr::IA32_VMX_TRUE_PROCBASED_CTLS, 0xFFF9_FFFE_0400_6172),
            (msr::IA32_VMX_TRUE_EXIT_CTLS, 0x01FF_FFFF_0003_6DFB),
            (msr::IA32_VMX_TRUE_ENTRY_CTLS, 0x0003_FFFF_0000_11FB),
            (msr::IA32_VMX_PROCBASED_CTLS2, 0x0015_3CFF_0000_0000),
            (msr::IA32_VMX_EPT_VPID_CAP, 0x0000_0F01_0673_4141),
        ]);
        Self {
            msrs,
            cr0: 0x8001_0031,
            cr4: 0x20,
            ..Self::default()
        }
    }
}

impl VmxHardware for FakeCpu {
    fn vmxon(&mut self, region_phys: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(format!("vmxon {region_phys:#x}"));
        self.vmxon_result.map_or(Ok(()), Err)
    }
    fn vmxoff(&mut self) -> Result<(), VmxInstructionError> {
        self.calls.push("vmxoff".into());
        Ok(())
    }
    fn vmclear(&mut self, _: u64) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn vmptrld(&mut self, _: u64) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn vmlaunch(&mut self) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn vmresume(&mut self) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn vmread(&mut self, _: u32) -> Result<u64, VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn vmwrite(&mut self, _: u32, _: u64) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn invept(&mut self, _: InveptKind, _: u64) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn invvpid(&mut self, _: InvvpidKind, _: u16, _: u64) -> Result<(), VmxInstructionError> {
        Err(VmxInstructionError::FailInvalid)
    }
    fn rdmsr(&mut self, number: u32) -> u64 {
        self.calls.push(format!("rdmsr {number:#x}"));
        *self
            .msrs
            .get(&number)
            .unwrap_or_else(|| panic!("read of MSR {number:#x} the model lacks"))
    }
    fn wrmsr(&mut self, number: u32, value: u64) {
        self.calls.push(format!("wrmsr {number:#x} {value:#x}"));
        self.msrs.insert(number, value);
    }
    fn read_cr(&mut self, cr: ControlRegister) -> u64 {
        match cr {
            ControlRegister::Cr0 => self.cr0,
            ControlRegister::Cr4 => self.cr4,
            other => panic!("unexpected read of {other:?}"),
        }
    }
    fn write_cr(&mut self, cr: ControlRegister, value: u64) {
        match cr {
            ControlRegister::Cr0 => self.cr0 = value,
            ControlRegister::Cr4 => self.cr4 = value,
            other => panic!("unexpected write of {other:?}"),
        }
    }
}

#[test]
fn locked_enabled_feature_control_is_left_alone() {
    let mut cpu = FakeCpu::skylake_like(0x5);
    let report = enter_vmx_operation(&mut cpu, 0x40_0000).unwrap();
    assert_eq!(report.feature_control_written, None);
    assert!(!cpu.calls.iter().any(|c| c.starts_with("wrmsr")));
    assert_eq!(cpu.calls.last().unwrap(), "vmxon 0x400000");
    assert_eq!(cpu.cr4 & CR4_VMXE, CR4_VMXE);
    assert_eq!(cpu.cr4, 0x2020);
    assert_eq!(cpu.cr0, 0x8001_0031 | 0x21);
}

#[test]
fn unlocked_feature_control_is_locked_with_vmxon_enabled_before_vmxon() {
    let mut cpu = FakeCpu::skylake_like(0);
    let report = enter_vmx_operation(&mut cpu, 0x1000).unwrap();
    assert_eq!(report.feature_control_written, Some(0x5));
    let write = cpu
        .calls
        .iter()
        .position(|c| c == "wrmsr 0x3a 0x5")
        .unwrap();
    let vmxon = cpu
        .calls
        .iter()
        .position(|c| c.starts_with("vmxon"))
        .unwrap();
    assert!(write < vmxon);
}

#[test]
fn locked_disabled_feature_control_stops_before_vmxon() {
    let mut cpu = FakeCpu::skylake_like(0x1);
    let err = enter_vmx_operation(&mut cpu, 0x1000).unwrap_err();
    assert_eq!(
        err,
        BringUpError::DisabledByFirmware {
            feature_control: 0x1
        }
    );
    assert!(!cpu.calls.iter().any(|c| c.starts_with("vmxon")));
    assert!(err.to_string().contains("disabled by firmware"));
}

#[test]
fn vmxon_failure_is_reported() {
    let mut cpu = FakeCpu::skylake_like(0x5);
    cpu.vmxon_result = Some(VmxInstructionError::FailInvalid);
    let err = enter_vmx_operation(&mut cpu, 0x1000).unwrap_err();
    assert_eq!(err, BringUpError::Vmxon(VmxInstructionError::FailInvalid));
}

#[test]
fn leaving_clears_vmxe() {
    let mut cpu = FakeCpu::skylake_like(0x5);
    enter_vmx_operation(&mut cpu, 0x1000).unwrap();
    leave_vmx_operation(&mut cpu).unwrap();
    assert_eq!(cpu.calls.last().unwrap(), "vmxoff");
    assert_eq!(cpu.cr4 & CR4_VMXE, 0);
}

#[test]
fn region_header_is_the_revision_id() {
    let basic = VmxBasic::from_msr(0x00DA_0400_0000_0004);
    assert_eq!(vmxon_region_header(&basic), Ok(4));
    let too_big = VmxBasic::from_msr(0x1FFF << 32);
    assert_eq!(
        vmxon_region_header(&too_big),
        Err(BringUpError::RegionTooLarge {
            region_size: 0x1FFF
        })
    );
}

#[test]
fn capabilities_use_true_controls_and_read_ept_caps() {
    let mut cpu = FakeCpu::skylake_like(0x5);
    let caps = read_capabilities(&mut cpu);
    assert!(caps.basic.true_controls);
    assert_eq!(caps.proc_based.allowed0, 0x0400_6172);
    assert!(cpu.calls.contains(&"rdmsr 0x48e".to_string()));
    assert!(!cpu.calls.contains(&"rdmsr 0x482".to_string()));
    assert!(caps.secondary.is_some());
    let ept = caps.ept_vpid.unwrap();
    assert!(ept.page_walk_4 && ept.memory_type_wb && ept.pages_2m);

    let mut lines = Vec::new();
    caps.report(|args| lines.push(args.to_string()));
    assert!(lines[0].starts_with("vmx basic revision=0x4"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("vmx ept/vpid caps walk4=yes")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("vmx proc-based controls (true): must_be_one=0x04006172")));
}

#[test]
fn default_controls_without_bit_55_and_no_secondary() {
    let mut cpu = FakeCpu::skylake_like(0x5);
    cpu.msrs.insert(msr::IA32_VMX_BASIC, 0x0000_0400_0000_0001);
    cpu.msrs.insert(msr::IA32_VMX_PINBASED_CTLS, 0x16);
    cpu.msrs
        .insert(msr::IA32_VMX_PROCBASED_CTLS, 0x7FF9_FFFE_0401_E172);
    cpu.msrs.insert(msr::IA32_VMX_EXIT_CTLS, 0x0003_6DFF);
    cpu.msrs.insert(msr::IA32_VMX_ENTRY_CTLS, 0x11FF);
    let caps = read_capabilities(&mut cpu);
    assert!(!caps.basic.true_controls);
    assert_eq!(caps.secondary, None);
    assert_eq!(caps.ept_vpid, None);
    assert!(!cpu
        .calls
        .iter()
        .any(|c| c == "rdmsr 0x48b" || c == "rdmsr 0x48c"));
}
