/* py_models.c — Python entry points of the models area (see py.h). */
#include "py.h"

static PyMethodDef methods[] = {
    {NULL, NULL, 0, NULL},
};

int qa_py_models_init(PyObject *module)
{
    return PyModule_AddFunctions(module, methods);
}
