//! Who sees which project, decided by the domain ([`AccessFacts::access_for`]); the one SQL
//! predicate that lists projects is proven against it (see the tests of this crate).

use domain::ids::UserId;
use domain::project::{Access, AccessFacts, ProjectStatus};
use domain::user::Role;
use uuid::Uuid;

/// The caller of a read: who, and with which global role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    pub user_id: Uuid,
    pub role: Role,
}

/// A project row's facts that visibility depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    pub owner_id: Uuid,
    pub status: ProjectStatus,
    /// Whether the reader is one of the project's members.
    pub reader_is_member: bool,
}

impl Visibility {
    /// What `reader` may do with the project, as the domain decides it.
    pub fn access(&self, reader: Reader) -> Access {
        AccessFacts {
            owner_id: UserId::from_uuid(self.owner_id),
            status: self.status,
            is_member: self.reader_is_member,
        }
        .access_for(UserId::from_uuid(reader.user_id), reader.role)
    }
}

/// The SQL text of [`LISTED`], as a macro so the list statement can be one `&'static str`.
macro_rules! listed_predicate {
    () => {
        "(p.owner_id = $1
          OR (EXISTS (SELECT 1 FROM rm.project_members m WHERE m.project_id = p.id AND m.user_id = $1)
              AND ($2 OR p.status = $3)))"
    };
}
pub(crate) use listed_predicate;

/// Which projects `GET /projects` lists: those the reader owns or is a member of (admins may read
/// every project, but their list is still their own), and of those only what the domain lets
/// them read. `$1` is the reader's id, `$2` whether the reader is an admin, `$3` the status in
/// which members still read a project ([`ProjectStatus::Active`] spelled), `p` the project row.
pub const LISTED: &str = listed_predicate!();

/// Whether the list predicate should include a project, written in Rust from the domain's rule:
/// related (owner or member) and readable. The tests hold [`LISTED`] to this for every case.
pub fn listed(v: &Visibility, reader: Reader) -> bool {
    (v.owner_id == reader.user_id || v.reader_is_member) && v.access(reader).can_read()
}
