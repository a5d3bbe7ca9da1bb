"""The sector hex editor's core: pending edits, search (patterns, alignment), block
cache, commit/revert, local files and clipboard formats. Offsets typed in the editor are
read by :mod:`nbdtui.present.offsets`, shared with the command line.

Nothing here imports Textual; ``nbdtui/tui/widgets/hexview.py`` and
``nbdtui/tui/screens/sector_editor.py`` draw it, and the CLI reuses
:mod:`nbdtui.editor.commit` for ``revert``.
"""
