//! [`code_enum!`]: the one way the record's format declares an enum stored
//! as a `u32` code. Every such enum (`PanicPhase`, `CpuState`,
//! `NotifierList`, ...) gets the same shape: `#[repr(u32)]` with its codes,
//! `ALL` in code order, `const fn`s `code` and `from_code` (usable in the
//! writers' `const` contexts), and the [`Code`](crate::Code) impl that
//! [`Decoded`](crate::Decoded) reads through.

/// Declares a `#[repr(u32)]` enum with its codes, `ALL`, `code`,
/// `from_code` and its [`Code`](crate::Code) implementation. Attributes
/// given before `pub enum` (docs, extra derives) go on the enum.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name { $( $(#[$vmeta])* $variant = $value, )+ }

        impl $name {
            /// Every value, in code order.
            pub const ALL: [Self; [$($value),+].len()] = [$(Self::$variant),+];

            /// The stable code stored in the crash record.
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// The variant's name as written in Rust (`SkippedLockBusy`):
            /// what the crash log's events print.
            pub const fn variant_name(self) -> &'static str {
                match self {
                    $( Self::$variant => stringify!($variant), )+
                }
            }

            /// The value a stored code names; `None` for a code no writer
            /// of this version stores (a newer writer, or corruption).
            pub const fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $value => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl $crate::Code for $name {
            fn from_code(code: u32) -> Option<Self> {
                Self::from_code(code)
            }
            fn code(self) -> u32 {
                Self::code(self)
            }
        }
    };
}
