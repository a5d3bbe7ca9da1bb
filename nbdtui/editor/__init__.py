"""The sector hex editor's core: pending edits, goto, search, block cache, commit/revert.

Nothing here imports Textual; ``nbdtui/tui/widgets/hexview.py`` and
``nbdtui/tui/screens/sector_editor.py`` draw it, and the CLI reuses
:mod:`nbdtui.editor.commit` for ``revert``.
"""
