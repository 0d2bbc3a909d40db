/* py_text.c — Python entry points of the text area (see py.h). */
#include "py.h"

static PyMethodDef methods[] = {
    {NULL, NULL, 0, NULL},
};

int qa_py_text_init(PyObject *module)
{
    return PyModule_AddFunctions(module, methods);
}
