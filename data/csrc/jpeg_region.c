/*
 * Decodes a region of a JPEG at a DCT scale of M/8 with libjpeg(-turbo), skipping the work
 * outside it: rows above are entropy-decoded only (jpeg_skip_scanlines), columns outside are
 * not inverse-transformed (jpeg_crop_scanline), rows below are never read.
 *
 * This lives in C because libjpeg reports fatal errors by calling error_exit, which must not
 * return; the only safe way out is longjmp, and a longjmp must never cross Rust frames.
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

struct fv_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *message;
    int message_len;
};

static void fv_error_exit(j_common_ptr cinfo) {
    struct fv_error *err = (struct fv_error *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    snprintf(err->message, (size_t)err->message_len, "%s", buffer);
    longjmp(err->jump, 1);
}

/* Warnings (e.g. corrupt data the decoder recovers from) are not printed to stderr. */
static void fv_output_message(j_common_ptr cinfo) { (void)cinfo; }

/*
 * Decodes rows [y0, y1) and at least columns [x0, x1) of the image scaled by scale_num/8, as
 * RGB. libjpeg widens the column range to whole blocks: the decoded columns start at *out_x0 and
 * span *out_width; `out` must hold (x1 - x0 + 64) * (y1 - y0) * 3 bytes.
 * Returns 0 on success, 1 when the colour space cannot be converted to RGB here (CMYK/YCCK:
 * the caller decodes another way), -1 with `message` set on a decoding error.
 */
/* The work after setjmp, in its own frame so that no local is live across the longjmp. */
static int decode_body(struct jpeg_decompress_struct *cinfo, int scale_num, int x0, int y0,
                       int x1, int y1, unsigned char *out, int *out_x0, int *out_width,
                       char *message, int message_len) {
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        return 1;
    }
    cinfo->out_color_space = JCS_RGB;
    cinfo->scale_num = (unsigned int)scale_num;
    cinfo->scale_denom = 8;
    jpeg_start_decompress(cinfo);
    if (x1 > (int)cinfo->output_width) x1 = (int)cinfo->output_width;
    if (y1 > (int)cinfo->output_height) y1 = (int)cinfo->output_height;
    if (x0 < 0 || y0 < 0 || x0 >= x1 || y0 >= y1) {
        snprintf(message, (size_t)message_len, "region outside the %ux%u decoded image",
                 cinfo->output_width, cinfo->output_height);
        return -1;
    }
    JDIMENSION xoffset = (JDIMENSION)x0, width = (JDIMENSION)(x1 - x0);
    if (xoffset > 0 || width < cinfo->output_width) {
        jpeg_crop_scanline(cinfo, &xoffset, &width);
    }
    if (y0 > 0) {
        jpeg_skip_scanlines(cinfo, (JDIMENSION)y0);
    }
    size_t stride = (size_t)width * 3;
    for (int row = y0; row < y1; row++) {
        JSAMPROW line = out + (size_t)(row - y0) * stride;
        if (jpeg_read_scanlines(cinfo, &line, 1) != 1) {
            snprintf(message, (size_t)message_len, "decoder stopped at row %d", row);
            return -1;
        }
    }
    *out_x0 = (int)xoffset;
    *out_width = (int)width;
    /* Rows below the region are never decoded. */
    jpeg_abort_decompress(cinfo);
    return 0;
}

int fv_jpeg_decode_region(const unsigned char *data, unsigned long len, int scale_num,
                          int x0, int y0, int x1, int y1, unsigned char *out,
                          int *out_x0, int *out_width, char *message, int message_len) {
    struct jpeg_decompress_struct cinfo;
    struct fv_error err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = fv_error_exit;
    err.pub.output_message = fv_output_message;
    err.message = message;
    err.message_len = message_len;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, len);
    int status = decode_body(&cinfo, scale_num, x0, y0, x1, y1, out, out_x0, out_width,
                             message, message_len);
    jpeg_destroy_decompress(&cinfo);
    return status;
}
