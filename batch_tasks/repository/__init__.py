"""Git itself: running it with the settings an agent could have planted ignored, and the
guard that the repository is as a run left it. Imports nothing above state/."""
