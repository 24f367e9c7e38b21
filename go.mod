module github.com/gvs-lb/gvs

go 1.26.8
