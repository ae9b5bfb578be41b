//! Periodic maintenance: deleting what has expired (`gatehouse_domain::retention`).

use gatehouse_domain::retention::{PurgeCounts, PurgePolicy};

use crate::{Gatehouse, ServiceResult};

impl Gatehouse {
    /// Deletes, in every pool, what has been expired long enough at the service's clock
    /// (sessions a week after they ended, revoked ids after their token's expiry, expired
    /// codes, forgotten runs of failed sign-ins, audit events past their pool's retention).
    /// Safe to run on several instances at once.
    pub async fn purge_expired(&self) -> ServiceResult<PurgeCounts> {
        Ok(self
            .store
            .purge_expired(self.now(), &PurgePolicy::default())
            .await?)
    }
}
