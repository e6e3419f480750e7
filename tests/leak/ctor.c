/* ctor.c - a program linked with ctorlib.c's library (see there). */
int ctorlib_loaded(void);

int main(void)
{
	return ctorlib_loaded() ? 0 : 1;
}
