//! Where each deployment's import state lives, so that pointing the same data at deployment B
//! never restarts or mixes the work done for A, and going back to A resumes A.
//!
//! A deployment is known by its identity ([`crate::deployment::identity`]: the name its deploy key
//! or URL gives, else its URL). Its state (checkpoints, run history, refused documents) lives in
//! `data/deployments/<identity>/state.sqlite`, its refused documents in
//! `data/deployments/<identity>/rejects/import/`, verify's spill in `…/.verify/` — with one
//! exception that keeps the single-deployment path (`CONVEX_URL`/`CONVEX_DEPLOY_KEY`) as it always
//! was: the deployment it used last keeps its state at `data/state.sqlite` (refused documents in
//! `data/rejects/import/`). When that path meets another deployment, the state there is parked in
//! `data/deployments/<its identity>/` and the new deployment's parked state, if any, is brought
//! back. A target (`--target`) always works in `data/deployments/<identity>/`, taking over a
//! `data/state.sqlite` of its deployment first.

use std::path::{Path, PathBuf};

use super::{State, StateError};
use crate::data_dir::{DataDir, DataDirError, create_private_dir};

/// The `meta` key holding the identity of the deployment the state describes.
pub const DEPLOYMENT_ID: &str = "deployment_id";

/// One deployment's state file, refused-documents folder and verify spill folder.
#[derive(Debug, Clone)]
pub struct StatePlace {
    pub identity: String,
    pub state: PathBuf,
    pub rejects_dir: PathBuf,
    pub spill: PathBuf,
}

impl StatePlace {
    /// The single-deployment path's place (`data/state.sqlite`), made `identity`'s: another
    /// deployment's state found there is parked, `identity`'s parked state brought back.
    pub fn activate(data_dir: &DataDir, identity: &str) -> Result<Self, StateError> {
        let active = data_dir.path("state.sqlite");
        let parked = parked_dir(data_dir, identity).join("state.sqlite");
        match owner(&active)? {
            Some(owner) if owner == identity => {}
            Some(owner) => {
                tracing::info!("parking the import state of deployment `{owner}`");
                let dir = parked_dir(data_dir, &owner);
                create_private_dir(&dir)?;
                move_state(&active, &dir.join("state.sqlite"))?;
                if parked.exists() {
                    move_state(&parked, &active)?;
                }
            }
            None if !active.exists() && parked.exists() => move_state(&parked, &active)?,
            None => {}
        }
        Ok(Self {
            identity: identity.to_owned(),
            state: active,
            rejects_dir: data_dir.path("rejects/import"),
            spill: data_dir.path(".verify"),
        })
    }

    /// The plan of the import `data/state.sqlite` holds when it belongs to another deployment
    /// than `identity` (what [`StatePlace::activate`] would park).
    pub fn parked_plan(data_dir: &DataDir, identity: &str) -> Result<Option<String>, StateError> {
        let active = data_dir.path("state.sqlite");
        match owner(&active)? {
            Some(owner) if owner != identity => {
                let state = State::open_read_only(&active)?;
                Ok(state.map(|s| s.meta("plan_hash")).transpose()?.flatten())
            }
            _ => Ok(None),
        }
    }

    /// A target's place, `data/deployments/<identity>/`; a `data/state.sqlite` of this
    /// deployment is moved there first (the state the single-deployment path used last, which
    /// is the newest: a deployment has one state at a time).
    pub fn for_target(data_dir: &DataDir, identity: &str) -> Result<Self, StateError> {
        let place = Self::in_deployments(data_dir, identity);
        let active = data_dir.path("state.sqlite");
        if owner(&active)?.as_deref() == Some(identity) {
            create_private_dir(&parked_dir(data_dir, identity))?;
            move_state(&active, &place.state)?;
        }
        Ok(place)
    }

    /// Where `identity`'s state is now, moving nothing (for reading it).
    pub fn find(data_dir: &DataDir, identity: &str) -> Result<Self, StateError> {
        let place = Self::in_deployments(data_dir, identity);
        let active = data_dir.path("state.sqlite");
        if owner(&active)?.as_deref() == Some(identity) {
            return Ok(Self {
                state: active,
                rejects_dir: data_dir.path("rejects/import"),
                ..place
            });
        }
        Ok(place)
    }

    fn in_deployments(data_dir: &DataDir, identity: &str) -> Self {
        let dir = parked_dir(data_dir, identity);
        Self {
            identity: identity.to_owned(),
            state: dir.join("state.sqlite"),
            rejects_dir: dir.join("rejects/import"),
            spill: dir.join(".verify"),
        }
    }
}

fn parked_dir(data_dir: &DataDir, identity: &str) -> PathBuf {
    data_dir.path("deployments").join(identity)
}

/// The identity of the deployment a state file describes: recorded since states are kept per
/// deployment, derived from the URL recorded before. `None` without a file, or for a file of
/// another version of migrate (the next import starts it over anyway).
fn owner(path: &Path) -> Result<Option<String>, StateError> {
    let Some(state) = State::open_read_only(path)? else { return Ok(None) };
    if let Some(id) = state.meta(DEPLOYMENT_ID)? {
        return Ok(Some(id));
    }
    Ok(state.meta("deployment")?.map(|url| crate::deployment::identity(&url, None)))
}

/// Moves a state file with its `-wal` and `-shm` companions (a killed run leaves
/// acknowledged batches in the `-wal` file); no connection is open on it.
fn move_state(from: &Path, to: &Path) -> Result<(), StateError> {
    // What the deployment last received (`import::sent`) goes with its state.
    let (sent_from, sent_to) = (from.with_file_name("sent"), to.with_file_name("sent"));
    if sent_to.exists() {
        std::fs::remove_dir_all(&sent_to).map_err(DataDirError::new("remove", &sent_to))?;
    }
    if sent_from.exists() {
        std::fs::rename(&sent_from, &sent_to).map_err(DataDirError::new("move", &sent_from))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let (from, to) = (with_suffix(from, suffix), with_suffix(to, suffix));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {
                // No companion to move, and none must stay behind at the destination.
                crate::data_dir::remove_if_exists(&to)?;
            }
            Err(e) => return Err(DataDirError::new("move", from)(e).into()),
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(path: &Path, identity: &str, marker: &str) {
        let state = State::open(path).unwrap();
        state.set_meta(DEPLOYMENT_ID, identity).unwrap();
        state.set_meta("marker", marker).unwrap();
    }

    fn marker(path: &Path) -> String {
        State::open_read_only(path).unwrap().unwrap().meta("marker").unwrap().unwrap()
    }

    #[test]
    fn switching_deployments_parks_and_brings_back_each_ones_state() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let a = StatePlace::activate(&data, "a").unwrap();
        state_of(&a.state, "a", "work of a");
        let b = StatePlace::activate(&data, "b").unwrap();
        assert_eq!(b.state, a.state, "the single path keeps data/state.sqlite");
        assert!(!b.state.exists(), "b starts with nothing of a's");
        state_of(&b.state, "b", "work of b");
        let a_again = StatePlace::activate(&data, "a").unwrap();
        assert_eq!(marker(&a_again.state), "work of a");
        assert_eq!(marker(&dir.path().join("deployments/b/state.sqlite")), "work of b");

        // A target of `a` takes its state over; `find` sees it wherever it is.
        assert_eq!(marker(&StatePlace::find(&data, "a").unwrap().state), "work of a");
        let target = StatePlace::for_target(&data, "a").unwrap();
        assert_eq!(target.state, dir.path().join("deployments/a/state.sqlite"));
        assert_eq!(marker(&target.state), "work of a");
        assert!(!dir.path().join("state.sqlite").exists());
        assert_eq!(StatePlace::find(&data, "a").unwrap().state, target.state);
    }

    #[test]
    fn what_a_deployment_last_received_moves_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let a = StatePlace::activate(&data, "a").unwrap();
        state_of(&a.state, "a", "work of a");
        std::fs::create_dir_all(dir.path().join("sent")).unwrap();
        std::fs::write(dir.path().join("sent/manifest.json"), "of a").unwrap();
        let b = StatePlace::activate(&data, "b").unwrap();
        assert!(!b.state.with_file_name("sent").exists(), "b has received nothing");
        let parked = dir.path().join("deployments/a/sent/manifest.json");
        assert_eq!(std::fs::read_to_string(&parked).unwrap(), "of a");
        StatePlace::activate(&data, "a").unwrap();
        let back = dir.path().join("sent/manifest.json");
        assert_eq!(std::fs::read_to_string(back).unwrap(), "of a");
        assert!(!parked.exists());
    }

    #[test]
    fn a_state_from_before_identities_belongs_to_its_urls_deployment() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        state.set_meta("deployment", "http://127.0.0.1:3210").unwrap();
        drop(state);
        let place = StatePlace::for_target(&data, "127.0.0.1-3210").unwrap();
        assert!(place.state.exists());
        assert!(!dir.path().join("state.sqlite").exists());
    }
}
