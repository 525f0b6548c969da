// A module of its own, so the pause binary stays out of the project's ./...
module stagecraft.local/pause

go 1.22
