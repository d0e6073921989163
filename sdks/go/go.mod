module github.com/nexus-oss/nexus/sdks/go

go 1.19
