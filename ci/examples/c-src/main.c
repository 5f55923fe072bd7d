#include <stdio.h>
#include "greet.h"

int main(void) {
    greet("ccache");
    return 0;
}
