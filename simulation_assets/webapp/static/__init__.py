"""Static files of the HogFlix web app (a package so that installs ship them as package data)."""
