"""An animated GIF's first frame, cut out of its bytes inside the TensorFlow graph (without
decoding pixels), so that decoding it costs one frame's memory whatever its number of frames:
[`first_gif_frame`][catdog.data.gif.first_gif_frame], which
[`decode_image`][catdog.data.images.decode_image] runs on every file."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

_GIF_RUN = 256  # sub-blocks of one size that one step of the GIF walk skips
_GIF_STEPS = 10_000  # steps before a GIF is cut where the walk stands (only crafted files)


@functools.cache
def _gif_trimmer():
    """The graph function behind [`first_gif_frame`][catdog.data.gif.first_gif_frame],
    traced once. One step skips a block header or a run of up to ``_GIF_RUN`` sub-blocks of
    the same size (encoders write 255-byte sub-blocks), so a frame of megabytes takes tens of
    steps; after ``_GIF_STEPS`` steps the file is cut where the walk stands."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((), tf.string)], autograph=False)
    def trim(data):
        raw = tf.io.decode_raw(data, tf.uint8)
        size = tf.size(raw)
        at = _gif_byte_reader(raw)
        start = 13 + _gif_color_table(at(10))  # header, screen descriptor, global color table
        pos, state = tf.while_loop(
            lambda _pos, state: state < 3,
            lambda pos, state: _gif_step(at, pos, state),
            (start, tf.constant(0)),
            maximum_iterations=_GIF_STEPS,
        )
        cut = tf.strings.substr(data, 0, tf.minimum(pos, size))
        return tf.switch_case(
            tf.minimum(state, 3),
            [
                lambda: cut + b"\x00\x3b",  # a crafted walk: its frame ends here
                lambda: cut + b"\x00\x3b",
                lambda: cut + b"\x00\x3b",
                lambda: tf.where(state == 3, cut + b"\x3b", data),  # and the trailer
            ],
        )

    return trim


def _gif_color_table(flags):
    """Bytes of the color table that a GIF packed-fields byte announces (in the graph)."""
    import tensorflow as tf

    has_table = tf.bitwise.bitwise_and(flags, 0x80) > 0
    return tf.where(has_table, 3 * tf.bitwise.left_shift(2, flags % 8), 0)


def _gif_byte_reader(raw):
    """``at(i)``: the bytes of ``raw`` at positions ``i`` as int32, -1 past the end."""
    import tensorflow as tf

    size = tf.size(raw)

    def at(i):
        byte = tf.cast(tf.gather(raw, tf.clip_by_value(i, 0, size - 1)), tf.int32)
        return tf.where(i < size, byte, -1)

    return at


def _gif_step(at, pos, state):
    """One step of the walk through a GIF's blocks: the next ``(pos, state)``.

    States: 0 at a block, 1 in an extension's sub-blocks, 2 in the first image's, 3 after the
    first image, 4 not a GIF as expected (the decoder gets it all)."""
    import tensorflow as tf

    b = at(pos)
    if_block = (
        tf.where(b == 0x21, pos + 2, pos + 11 + _gif_color_table(at(pos + 9))),
        tf.where(b == 0x21, 1, tf.where(b == 0x2C, 2, 4)),
    )  # extension: introducer, label; image: descriptor, color table, code size
    run = at(pos + (b + 1) * tf.range(_GIF_RUN)) == b  # equal sub-blocks from pos
    skipped = tf.argmin(tf.concat([tf.cast(run, tf.int32), [0]], 0), output_type=tf.int32)
    if_sub_blocks = (
        tf.where(b > 0, pos + (b + 1) * skipped, pos + 1),
        tf.where(b < 0, 4, tf.where(b > 0, state, tf.where(state == 1, 0, 3))),
    )
    return (
        tf.where(state == 0, if_block[0], if_sub_blocks[0]),
        tf.where(state == 0, if_block[1], if_sub_blocks[1]),
    )


def first_gif_frame(data: tf.Tensor) -> tf.Tensor:
    """Encoded GIF bytes cut after their first frame; other bytes unchanged.

    TensorFlow's GIF decoder reads every frame into memory even when it returns the first
    only: a few megabytes of animation (2,000 frames of 1000x1000) took 2 GB. This follows
    the file's blocks (without decoding pixels) to the end of the first frame and ends the
    file there, so decoding costs one frame. Files it cannot follow are returned whole.

    Examples:
        ```python
        tf.io.decode_gif(first_gif_frame(tf.io.read_file("animated.gif"))).shape[0]
        # 1
        ```
    """
    import tensorflow as tf

    data = tf.convert_to_tensor(data, tf.string)
    is_gif = tf.strings.substr(data, 0, 3) == b"GIF"
    return tf.cond(is_gif, lambda: _gif_trimmer()(data), lambda: data)
