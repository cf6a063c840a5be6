"""Tools for instructor-led sessions: a warm start for live demos (`prepare`) and offline HTML slides (`slides`)."""
