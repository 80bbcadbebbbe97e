//! Stable enums: one table per enum gives its numbers, its snake_case names and its list of values,
//! so the codec, the wire mapping and the CLI read the same table instead of repeating it.

/// An enum whose numbers and names are part of a contract (storage, wire, JSON): never renumber or
/// rename a value, only append.
pub trait StableEnum: Copy + Eq + 'static {
    /// Every value, in number order.
    const ALL: &'static [Self];
    /// The stable number (what the codec stores).
    fn number(self) -> u16;
    /// The stable snake_case name (what JSON, the CLI and the docs show).
    fn name(self) -> &'static str;
    fn from_number(n: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.number() == n)
    }
    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == s)
    }
}

/// Declares a stable enum from one table: `Variant = number => "name"`. Generates the enum,
/// `ALL`, `from_repr`, `name`, `Display` and the [`StableEnum`] impl.
macro_rules! stable_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $num, )+
        }

        impl $name {
            /// Every value, in number order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value with this stable number, if any.
            pub fn from_repr(v: $repr) -> Option<$name> {
                match v {
                    $( $num => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Stable snake_case name, used in JSON output and docs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl $crate::enums::StableEnum for $name {
            const ALL: &'static [$name] = $name::ALL;
            fn number(self) -> u16 {
                self as u16
            }
            fn name(self) -> &'static str {
                $name::name(&self)
            }
        }
    };
}

pub(crate) use stable_enum;

#[cfg(test)]
mod tests {
    use super::StableEnum;
    use crate::{AccountKind, AccountStatus, ClientRole, PostingKind, ResultCode, TransferState};

    fn dense_and_unique<E: StableEnum + std::fmt::Debug>() {
        for (i, v) in E::ALL.iter().enumerate() {
            assert_eq!(usize::from(v.number()), i, "{v:?} numbers are dense");
            assert_eq!(E::from_number(v.number()), Some(*v));
            assert_eq!(E::from_name(v.name()), Some(*v));
        }
        assert_eq!(E::from_number(E::ALL.len() as u16), None);
    }

    #[test]
    fn every_table_is_dense_and_round_trips() {
        dense_and_unique::<ResultCode>();
        dense_and_unique::<AccountKind>();
        dense_and_unique::<AccountStatus>();
        dense_and_unique::<ClientRole>();
        dense_and_unique::<TransferState>();
        dense_and_unique::<PostingKind>();
        dense_and_unique::<crate::TimerKind>();
    }
}
