module provision/ctmpl-render

go 1.19
