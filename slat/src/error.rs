//! Failures of the table builder, and the glue to each format's own error type.

use core::fmt;

/// Table builder failures common to both formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlatError {
    /// The frame allocator is exhausted.
    OutOfFrames,
    /// An address is not aligned to the page size.
    Misaligned(u64),
    /// A guest-physical address beyond the 48 bits a 4-level walk covers, or a host-physical
    /// one beyond 52.
    AddressTooLarge(u64),
    /// The guest-physical page (or part of it) is already mapped.
    AlreadyMapped(u64),
    /// Nothing is mapped at that guest-physical address with that page size.
    NotMapped(u64),
    /// A page of the other size covers that guest-physical address.
    SizeMismatch(u64),
    /// The allocator does not know a table frame the walk reached.
    UnknownFrame(u64),
}

impl fmt::Display for SlatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfFrames => write!(f, "out of frames for page tables"),
            Self::Misaligned(a) => write!(f, "address {a:#x} is not aligned to the page size"),
            Self::AddressTooLarge(a) => write!(f, "address {a:#x} is out of range"),
            Self::AlreadyMapped(a) => write!(f, "guest-physical {a:#x} is already mapped"),
            Self::NotMapped(a) => {
                write!(f, "guest-physical {a:#x} is not mapped with that page size")
            }
            Self::SizeMismatch(a) => {
                write!(
                    f,
                    "guest-physical {a:#x} is mapped with a different page size"
                )
            }
            Self::UnknownFrame(a) => write!(f, "table frame {a:#x} is unknown to the allocator"),
        }
    }
}

/// Declares a format's own error enum: every [`SlatError`] variant (same names and payloads) plus
/// one variant of its own, with `From<SlatError>` and `Display`. Messages are the [`SlatError`]
/// ones behind `prefix` and `": "`; the own variant's is `message`.
///
/// ```text
/// slat::format_error!(
///     /// EPT builder failures.
///     pub enum EptError, "EPT",
///     /// Write access requested without read.
///     WriteWithoutRead => "write access without read access"
/// );
/// ```
#[macro_export]
macro_rules! format_error {
    (
        $(#[$meta:meta])* $vis:vis enum $error:ident, $prefix:literal,
        $(#[$own_meta:meta])* $own:ident => $message:literal
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $error {
            /// The frame allocator is exhausted.
            OutOfFrames,
            /// An address is not aligned to the page size.
            Misaligned(u64),
            /// A guest-physical address beyond the 48 bits a 4-level walk covers, or a
            /// host-physical one beyond 52.
            AddressTooLarge(u64),
            /// The guest-physical page (or part of it) is already mapped.
            AlreadyMapped(u64),
            /// Nothing is mapped at that guest-physical address with that page size.
            NotMapped(u64),
            /// A page of the other size covers that guest-physical address (no merging).
            SizeMismatch(u64),
            /// The allocator does not know a table frame the walk reached.
            UnknownFrame(u64),
            $(#[$own_meta])*
            $own,
        }

        impl ::core::convert::From<$crate::SlatError> for $error {
            fn from(err: $crate::SlatError) -> Self {
                match err {
                    $crate::SlatError::OutOfFrames => Self::OutOfFrames,
                    $crate::SlatError::Misaligned(a) => Self::Misaligned(a),
                    $crate::SlatError::AddressTooLarge(a) => Self::AddressTooLarge(a),
                    $crate::SlatError::AlreadyMapped(a) => Self::AlreadyMapped(a),
                    $crate::SlatError::NotMapped(a) => Self::NotMapped(a),
                    $crate::SlatError::SizeMismatch(a) => Self::SizeMismatch(a),
                    $crate::SlatError::UnknownFrame(a) => Self::UnknownFrame(a),
                }
            }
        }

        impl ::core::fmt::Display for $error {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let shared = match *self {
                    Self::OutOfFrames => $crate::SlatError::OutOfFrames,
                    Self::Misaligned(a) => $crate::SlatError::Misaligned(a),
                    Self::AddressTooLarge(a) => $crate::SlatError::AddressTooLarge(a),
                    Self::AlreadyMapped(a) => $crate::SlatError::AlreadyMapped(a),
                    Self::NotMapped(a) => $crate::SlatError::NotMapped(a),
                    Self::SizeMismatch(a) => $crate::SlatError::SizeMismatch(a),
                    Self::UnknownFrame(a) => $crate::SlatError::UnknownFrame(a),
                    Self::$own => return f.write_str(concat!($prefix, ": ", $message)),
                };
                write!(f, "{}: {}", $prefix, shared)
            }
        }
    };
}
