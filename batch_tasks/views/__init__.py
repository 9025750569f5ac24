"""What a person sees: the board and live panel, the plain lines, the report, an item's
info, the dry run. Read only, from the run and the state folder; imports run/ and below."""
