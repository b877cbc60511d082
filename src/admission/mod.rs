//! The admission webhook backend. kube-apiserver calls its own aggregated path
//! (`/apis/admission.example.com/v1/validatingadmissionreviews` and `mutatingadmissionreviews`),
//! so webhook calls are authenticated and authorized like every other request; nothing posted is
//! stored.
//!
//! - [`review`]: AdmissionReview v1/v1beta1 in and out;
//! - [`policy`]: the namespace reservation policy over a watch-fed map of NamespaceReservations;
//! - [`events`]: Warning Events on the reservation for each denial, off the request path.

pub mod events;
pub mod policy;
pub mod review;

use crate::api::discovery::ExtraResource;
use crate::api::error::ApiResult;
use events::{Denied, Recorder};
use policy::Reservations;
use std::sync::Arc;

/// The review resources, as they appear in paths and discovery.
pub const REVIEW_RESOURCES: [&str; 2] = ["validatingadmissionreviews", "mutatingadmissionreviews"];

/// The review resources in discovery: cluster-scoped, `create` only.
pub const DISCOVERY: [ExtraResource; 2] = [
    ExtraResource {
        plural: "validatingadmissionreviews",
        singular: "validatingadmissionreview",
        kind: "AdmissionReview",
        verbs: &["create"],
    },
    ExtraResource {
        plural: "mutatingadmissionreviews",
        singular: "mutatingadmissionreview",
        kind: "AdmissionReview",
        verbs: &["create"],
    },
];

/// Which webhook a review is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// May deny; never patches.
    Validating,
    /// May patch; never denies.
    Mutating,
}

impl Webhook {
    /// The webhook a resource name serves.
    pub fn for_resource(plural: &str) -> Option<Webhook> {
        match plural {
            "validatingadmissionreviews" => Some(Webhook::Validating),
            "mutatingadmissionreviews" => Some(Webhook::Mutating),
            _ => None,
        }
    }
}

/// The policy and where its denials are reported.
pub struct Admission {
    /// The NamespaceReservations, kept current by the store's watch.
    pub reservations: Arc<Reservations>,
    /// Denial Events.
    pub recorder: Recorder,
}

impl Admission {
    /// Answers one posted AdmissionReview (the rendered answer, or a 400 for a malformed one).
    pub fn review(&self, webhook: Webhook, body: &[u8]) -> ApiResult<Vec<u8>> {
        let review = review::parse(body)?;
        let answer = match webhook {
            Webhook::Mutating => policy::mutate(&review.request, &self.reservations),
            Webhook::Validating => {
                let (answer, denied_by) = policy::validate(&review.request, &self.reservations);
                if let Some(reservation) = denied_by
                    && !review.request.is_dry_run()
                {
                    self.recorder.record(Denied {
                        reservation,
                        user: review.request.user_info.username.to_string(),
                    });
                }
                answer
            }
        };
        review::render(&review, &answer)
    }
}
