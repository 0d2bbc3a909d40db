/* py_frontend.c — Python entry points of the frontend area (see py.h). */
#include "py.h"

static PyMethodDef methods[] = {
    {NULL, NULL, 0, NULL},
};

int qa_py_frontend_init(PyObject *module)
{
    return PyModule_AddFunctions(module, methods);
}
