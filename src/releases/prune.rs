//! Which images old releases may give up. The newest `keep` releases keep every image they ran,
//! so `provision rollback` to any of them needs no build; an older release's images built by
//! provision are removed after a successful apply, unless a kept release or a container of the
//! stack (running or not) still uses them. Images provision did not build (consul, a base
//! image) are never removed.

use std::collections::BTreeSet;

use super::Release;

/// The images to remove: references of built images of releases beyond the newest `keep`
/// that no kept release and no container in `in_use` (references and image IDs) uses.
pub fn images_to_remove(releases: &[Release], keep: u32, in_use: &BTreeSet<String>) -> Vec<String> {
    let split = releases.len().saturating_sub(keep as usize);
    let (old, kept) = releases.split_at(split);
    let kept_uses: BTreeSet<&str> = kept
        .iter()
        .flat_map(|r| &r.images)
        .flat_map(|i| std::iter::once(i.reference.as_str()).chain(i.id.as_deref()))
        .collect();
    let used = |value: &str| kept_uses.contains(value) || in_use.contains(value);
    let remove: BTreeSet<String> = old
        .iter()
        .flat_map(|r| &r.images)
        .filter(|i| i.built)
        .filter(|i| !used(&i.reference) && !i.id.as_deref().is_some_and(used))
        .map(|i| i.reference.clone())
        .collect();
    remove.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::{Origin, ReleaseImage};

    fn release(id: u32, images: &[(&str, &str, bool)]) -> Release {
        Release {
            id,
            time: String::new(),
            origin: Origin::Apply,
            changes: Vec::new(),
            images: images
                .iter()
                .map(|(reference, image_id, built)| ReleaseImage {
                    service: "web".into(),
                    reference: (*reference).into(),
                    id: Some((*image_id).into()),
                    built: *built,
                })
                .collect(),
            spec_sha256: String::new(),
            files_sha256: String::new(),
            target: "compose".into(),
        }
    }

    #[test]
    fn only_images_no_kept_release_or_container_uses_go() {
        let releases = [
            release(
                1,
                &[
                    ("web:1", "sha256:a", true),
                    ("consul:1.8", "sha256:c", false),
                ],
            ),
            release(
                2,
                &[("web:2", "sha256:b", true), ("redis:1", "sha256:r", true)],
            ),
            release(
                3,
                &[("web:3", "sha256:d", true), ("redis:1", "sha256:r", true)],
            ),
            release(
                4,
                &[("web:1", "sha256:a", true), ("redis:1", "sha256:r", true)],
            ),
        ];
        let none = BTreeSet::new();
        // Keep 2 (3 and 4): web:1 is used by 4, redis:1 by both, consul is not built.
        assert_eq!(images_to_remove(&releases, 2, &none), ["web:2"]);
        // A container still running web:2 (by its ID) keeps it.
        let running = BTreeSet::from(["sha256:b".to_owned()]);
        assert!(images_to_remove(&releases, 2, &running).is_empty());
        // Keep 1: web:3 goes too; keeping more than there are removes nothing.
        assert_eq!(images_to_remove(&releases, 1, &none), ["web:2", "web:3"]);
        assert!(images_to_remove(&releases, 9, &none).is_empty());
    }
}
