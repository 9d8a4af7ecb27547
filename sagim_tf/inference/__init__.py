"""Editing photos with a trained G: the editor (:mod:`.editor`) and figures (:mod:`.figures`)."""
