//! The children of a process znode, by name: the one place these names are written.

use serde::{Deserialize, Serialize};

/// How far a batch got: the process child a stage writes when done, and the data it produced
/// (also the URL segment its data is pulled from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Select wrote the canal batch's entries.
    Selected,
    /// Extract wrote the mapped rows with their column views (source names).
    Extracted,
    /// Transform wrote the rows under target names: what Load applies.
    Transformed,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 3] = [Stage::Selected, Stage::Extracted, Stage::Transformed];

    /// The process child (and URL segment) of the stage.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Selected => "selected",
            Stage::Extracted => "extracted",
            Stage::Transformed => "transformed",
        }
    }

    /// Parses [`Stage::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// The ephemeral child that claims a process for a stage; it vanishes with its owner's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lock {
    /// Extract claimed the process (`selected` → `extracted`).
    Extract,
    /// Transform claimed the process (`extracted` → `transformed`).
    Transform,
    /// Load claimed the process (strictly the oldest one).
    Load,
}

impl Lock {
    /// Every lock.
    pub const ALL: [Lock; 3] = [Lock::Extract, Lock::Transform, Lock::Load];

    /// The child's name.
    pub fn name(self) -> &'static str {
        match self {
            Lock::Extract => "extract-lock",
            Lock::Transform => "transform-lock",
            Lock::Load => "lock",
        }
    }
}

/// A child of a process znode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    /// A stage is done: it holds a [`crate::process::Produced`].
    Done(Stage),
    /// A stage claimed the process.
    Lock(Lock),
}

impl Child {
    /// The child's name.
    pub fn name(self) -> &'static str {
        match self {
            Child::Done(s) => s.name(),
            Child::Lock(l) => l.name(),
        }
    }

    /// Parses [`Child::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Stage::parse(s).map(Child::Done).or_else(|| {
            Lock::ALL
                .into_iter()
                .find(|l| l.name() == s)
                .map(Child::Lock)
        })
    }
}

impl From<Stage> for Child {
    fn from(s: Stage) -> Self {
        Child::Done(s)
    }
}

impl From<Lock> for Child {
    fn from(l: Lock) -> Self {
        Child::Lock(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for c in Stage::ALL
            .into_iter()
            .map(Child::Done)
            .chain(Lock::ALL.into_iter().map(Child::Lock))
        {
            assert_eq!(Child::parse(c.name()), Some(c));
        }
        assert_eq!(Child::parse("other"), None);
        assert_eq!(Child::from(Lock::Load).name(), "lock");
    }
}
