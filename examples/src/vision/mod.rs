//! Helpers shared by the vision examples: image folders, drawing faces, label captions.
