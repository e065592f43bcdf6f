"""Text peers: fastText, Kim's TextCNN and Zhang et al.'s character CNN.

Each takes integer token ids of shape `(batch, sequence_length)`, where 0 is
padding (what `keras.layers.TextVectorization(output_mode="int")` gives: 0 for
padding, 1 for out-of-vocabulary tokens), and outputs float32 logits. The
vectoriser itself stays outside the peer, in the input pipeline;
`with_vectorizer` joins the two into one model that classifies raw strings
(on TensorFlow).
"""

import keras
import numpy as np
from keras import layers
from keras import ops

from rdml_keras import checks
from rdml_keras.models import _common

# Zhang, Zhao & LeCun (2015), Table 1, with the RDML reference's sizes
# (text-clf/Model_CharCNN): (kernel width, max-pool after it or None).
CHAR_CNN_CONVS = ((7, 3), (7, 3), (3, None), (3, None), (3, None), (3, 3))


@keras.saving.register_keras_serializable(package="rdml_keras")
class TokenMean(layers.Layer):
    """Mean of the token vectors over the non-padding tokens of each sequence.

    Called on `[vectors, token_ids]`; positions whose id is `padding_id` do
    not count. A sequence of padding only gives the zero vector (not NaN).

    Example:

    >>> vectors = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    >>> ids = np.array([[5, 7, 0]])
    >>> keras.ops.convert_to_numpy(TokenMean()([vectors, ids])).tolist()
    [[2.0, 3.0]]
    """

    def __init__(self, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.padding_id = int(padding_id)

    def call(self, inputs):
        vectors, token_ids = inputs
        mask = ops.cast(ops.not_equal(token_ids, self.padding_id), vectors.dtype)
        total = ops.sum(vectors * mask[..., None], axis=1)
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        return total / count

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], shape[2])

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}


@keras.saving.register_keras_serializable(package="rdml_keras")
class OneHotTokens(layers.Layer):
    """One-hot characters, padding as the zero vector (Zhang et al. 2015).

    Token id `i >= 1` becomes the unit vector `e_{i-1}` of size
    `vocabulary_size - 1`; the padding id 0 becomes all zeros. No weights:
    the RDML reference's CharCNN uses a frozen identity embedding.

    Example:

    >>> x = OneHotTokens(4)(np.array([[2, 0]]))
    >>> keras.ops.convert_to_numpy(x).tolist()
    [[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)

    def call(self, token_ids):
        one_hot = ops.one_hot(
            ops.cast(token_ids, "int32"), self.vocabulary_size, dtype=self.compute_dtype
        )
        return one_hot[..., 1:]

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocabulary_size - 1)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


def check_sequence_shape(input_shape, architecture, min_length=1):
    """`input_shape` as `(sequence_length,)`; an int is taken as the length."""
    shape = _common.as_shape(input_shape)
    if shape is None or len(shape) != 1 or not checks.is_integer(shape[0]) or shape[0] < 1:
        checks.fail(
            "input_shape",
            input_shape,
            f"(sequence_length,) with a positive integer length (token ids) for {architecture}",
        )
    if shape[0] < min_length:
        checks.fail(
            "input_shape",
            input_shape,
            f"a sequence length of at least {min_length} for {architecture}",
        )
    return (int(shape[0]),)


def _check_embeddings(embeddings, vocabulary_size, embedding_dim, trainable_embeddings):
    """The pretrained matrix as float32 (or None) and whether it trains."""
    if embeddings is not None:
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.shape != (vocabulary_size, embedding_dim):
            checks.fail(
                "embeddings",
                f"<array of shape {matrix.shape}>",
                f"an array of shape (vocabulary_size, embedding_dim) = "
                f"({vocabulary_size}, {embedding_dim})",
            )
        if not np.all(np.isfinite(matrix)):
            checks.fail("embeddings", "<array with NaN or inf>", "an array of finite numbers")
        embeddings = matrix
    if trainable_embeddings is None:
        # The reference keeps pretrained vectors frozen; without them the
        # embeddings must train (frozen random vectors learn nothing).
        trainable_embeddings = embeddings is None
    if not isinstance(trainable_embeddings, bool):
        checks.fail("trainable_embeddings", trainable_embeddings, "True, False or None")
    return embeddings, trainable_embeddings


def _embedding(vocabulary_size, embedding_dim, embeddings, trainable):
    return layers.Embedding(
        vocabulary_size,
        embedding_dim,
        embeddings_initializer="uniform" if embeddings is None else "zeros",
        trainable=trainable,
        name="embedding",
    )


def _model(inputs, outputs, name, arch, embeddings):
    model = keras.Model(inputs, outputs, name=name or _common.unique_name(arch))
    if embeddings is not None:
        model.get_layer("embedding").embeddings.assign(embeddings)
    return model


def _check_common(architecture, input_shape, num_classes, vocabulary_size, weight_decay, **sizes):
    input_shape = check_sequence_shape(input_shape, architecture)
    num_classes = _common.check_num_classes(num_classes)
    vocabulary_size = checks.integer("vocabulary_size", vocabulary_size, minimum=2)
    weight_decay = _common.check_weight_decay(weight_decay)
    for key, value in sizes.items():
        checks.integer(key, value, minimum=1)
    return input_shape, num_classes, vocabulary_size, weight_decay


def fasttext(
    input_shape,
    num_classes,
    vocabulary_size=None,
    embedding_dim=300,
    hidden_units=10,
    embeddings=None,
    trainable_embeddings=None,
    weight_decay=0.0,
    name=None,
):
    """fastText (Joulin et al. 2017) as the RDML reference builds it.

    Token embeddings averaged over the non-padding tokens, a linear layer of
    `hidden_units` (no non-linearity), then the class logits. Word n-grams
    are just more tokens: give the vectoriser `ngrams=2`.

    Args:
        input_shape: `(sequence_length,)` of the token ids.
        num_classes: number of logits.
        vocabulary_size: number of token ids, padding and OOV included
            (`TextVectorization.vocabulary_size()`).
        embedding_dim: size of the token vectors (the reference: 300, GloVe).
        hidden_units: size of the linear layer (the reference: 10).
        embeddings: optional pretrained `(vocabulary_size, embedding_dim)`
            matrix, e.g. from `load_word_vectors`.
        trainable_embeddings: whether the embeddings train; by default they
            do unless `embeddings` is given (the reference freezes GloVe).
        weight_decay: SGD-style weight decay as an L2 penalty on the dense
            kernels (not on the embeddings).
        name: model name; defaults to `fasttext` made unique.

    Returns:
        A functional `keras.Model` from int token ids to float32 logits.

    Example:

    >>> model = fasttext((64,), num_classes=8, vocabulary_size=1000, embedding_dim=16)
    >>> model.output_shape
    (None, 8)
    """
    arch = "fasttext"
    input_shape, num_classes, vocabulary_size, weight_decay = _check_common(
        arch,
        input_shape,
        num_classes,
        vocabulary_size,
        weight_decay,
        embedding_dim=embedding_dim,
        hidden_units=hidden_units,
    )
    embeddings, trainable = _check_embeddings(
        embeddings, vocabulary_size, embedding_dim, trainable_embeddings
    )
    inputs = keras.Input(shape=input_shape, dtype="int32", name="token_ids")
    vectors = _embedding(vocabulary_size, embedding_dim, embeddings, trainable)(inputs)
    x = TokenMean(name="mean")([vectors, inputs])
    x = layers.Dense(
        hidden_units,
        kernel_regularizer=_common.kernel_regularizer(weight_decay),
        name="hidden",
    )(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return _model(inputs, outputs, name, arch, embeddings)


def text_cnn(
    input_shape,
    num_classes,
    vocabulary_size=None,
    embedding_dim=300,
    kernel_sizes=(3, 4, 5),
    filters=100,
    dropout_rate=0.5,
    embeddings=None,
    trainable_embeddings=None,
    weight_decay=0.0,
    name=None,
):
    """TextCNN (Kim 2014, "Convolutional Neural Networks for Sentence Classification").

    Token embeddings, parallel 1-D convolutions of widths 3, 4 and 5 with 100
    filters each and ReLU, max-pooled over time, concatenated, dropout 0.5,
    then the class logits. (Kim's max-norm constraint of 3 on the last
    layer is left out.)

    Args:
        input_shape: `(sequence_length,)` of the token ids, at least the
            widest kernel.
        num_classes: number of logits.
        vocabulary_size: number of token ids, padding and OOV included.
        embedding_dim: size of the token vectors (Kim: 300, word2vec).
        kernel_sizes: the convolution widths.
        filters: filters per width.
        dropout_rate: dropout before the logits.
        embeddings: optional pretrained `(vocabulary_size, embedding_dim)`
            matrix, e.g. from `load_word_vectors`.
        trainable_embeddings: whether the embeddings train; by default they
            do unless `embeddings` is given (Kim's "static" model).
        weight_decay: SGD-style weight decay as an L2 penalty on the conv and
            dense kernels.
        name: model name; defaults to `text_cnn` made unique.

    Returns:
        A functional `keras.Model` from int token ids to float32 logits.

    Example:

    >>> model = text_cnn((64,), num_classes=8, vocabulary_size=1000, embedding_dim=16)
    >>> model.output_shape
    (None, 8)
    """
    arch = "text_cnn"
    try:
        kernel_sizes = tuple(kernel_sizes)
    except TypeError:
        kernel_sizes = ()
    if not kernel_sizes or not all(checks.is_integer(k) and k >= 1 for k in kernel_sizes):
        checks.fail("kernel_sizes", kernel_sizes, "a non-empty list of positive integers")
    input_shape, num_classes, vocabulary_size, weight_decay = _check_common(
        arch,
        input_shape,
        num_classes,
        vocabulary_size,
        weight_decay,
        embedding_dim=embedding_dim,
        filters=filters,
    )
    check_sequence_shape(input_shape, arch, min_length=max(kernel_sizes))
    dropout_rate = checks.number("dropout_rate", dropout_rate, minimum=0, below=1)
    embeddings, trainable = _check_embeddings(
        embeddings, vocabulary_size, embedding_dim, trainable_embeddings
    )
    inputs = keras.Input(shape=input_shape, dtype="int32", name="token_ids")
    vectors = _embedding(vocabulary_size, embedding_dim, embeddings, trainable)(inputs)
    pooled = []
    for width in kernel_sizes:
        x = layers.Conv1D(
            filters,
            width,
            activation="relu",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=f"conv{width}",
        )(vectors)
        pooled.append(layers.GlobalMaxPooling1D(name=f"pool{width}")(x))
    x = layers.Concatenate(name="concat")(pooled) if len(pooled) > 1 else pooled[0]
    x = layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return _model(inputs, outputs, name, arch, embeddings)


def char_cnn_length(sequence_length):
    """Time steps left after the CharCNN's six convolutions and three pools.

    Example:

    >>> char_cnn_length(300), char_cnn_length(1014)  # the reference's and the paper's
    (7, 34)
    """
    length = sequence_length
    for width, pool in CHAR_CNN_CONVS:
        length -= width - 1
        if pool:
            length //= pool
    return length


def char_cnn(
    input_shape=(300,),
    num_classes=4,
    vocabulary_size=None,
    channels=256,
    hidden_units=256,
    dropout_rate=0.5,
    embedding_dim=None,
    weight_decay=0.0,
    name=None,
):
    """Character-level CNN (Zhang, Zhao & LeCun 2015) as the RDML reference builds it.

    One-hot characters (padding all zeros), six 1-D convolutions of kernel
    widths 7, 7, 3, 3, 3, 3 with `channels` filters and ReLU, max-pooling of
    3 after the 1st, 2nd and 6th, then two ReLU dense layers of
    `hidden_units` with dropout and the class logits. The reference
    (text-clf/Model_CharCNN) uses sequence length 300 (the paper 1,014),
    256 channels, linear 256 and dropout 0.5: the paper's "small" model.

    Args:
        input_shape: `(sequence_length,)` of the character ids, at least
            123 so that one time step survives the pools.
        num_classes: number of logits.
        vocabulary_size: number of character ids, padding and OOV included.
        channels: filters of every convolution.
        hidden_units: size of the two dense layers.
        dropout_rate: dropout after each dense layer.
        embedding_dim: `None` for one-hot characters (the paper and the
            reference); an integer for a trainable embedding of that size.
        weight_decay: SGD-style weight decay as an L2 penalty on the conv and
            dense kernels.
        name: model name; defaults to `char_cnn` made unique.

    Returns:
        A functional `keras.Model` from int character ids to float32 logits.

    Example:

    >>> model = char_cnn((300,), num_classes=4, vocabulary_size=70)
    >>> model.output_shape, model.get_layer("flatten").output.shape
    ((None, 4), (None, 1792))
    """
    arch = "char_cnn"
    input_shape, num_classes, vocabulary_size, weight_decay = _check_common(
        arch,
        input_shape,
        num_classes,
        vocabulary_size,
        weight_decay,
        channels=channels,
        hidden_units=hidden_units,
    )
    min_length = next(n for n in range(1, 10_000) if char_cnn_length(n) >= 1)
    check_sequence_shape(input_shape, arch, min_length=min_length)
    dropout_rate = checks.number("dropout_rate", dropout_rate, minimum=0, below=1)
    if embedding_dim is not None:
        checks.integer("embedding_dim", embedding_dim, minimum=1)
    inputs = keras.Input(shape=input_shape, dtype="int32", name="char_ids")
    if embedding_dim is None:
        x = OneHotTokens(vocabulary_size, name="one_hot")(inputs)
    else:
        x = _embedding(vocabulary_size, embedding_dim, None, True)(inputs)
    for i, (width, pool) in enumerate(CHAR_CNN_CONVS, start=1):
        x = layers.Conv1D(
            channels,
            width,
            activation="relu",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=f"conv{i}",
        )(x)
        if pool:
            x = layers.MaxPooling1D(pool, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(
            hidden_units,
            activation="relu",
            kernel_regularizer=_common.kernel_regularizer(weight_decay),
            name=f"dense{i}",
        )(x)
        x = layers.Dropout(dropout_rate, name=f"dropout{i}")(x)
    outputs = _common.logits_head(x, num_classes, weight_decay)
    return _model(inputs, outputs, name, arch, None)


def with_vectorizer(peer, vectorizer, name=None):
    """A model from raw strings to the peer's logits, for TensorFlow.

    `vectorizer` is the adapted `keras.layers.TextVectorization` the peer was
    trained behind (the same vocabulary, standardisation and sequence
    length). The result saves to one `.keras` file, vocabulary included, and
    classifies a batch of strings: `model.predict(np.array(["some text"]))`.
    Strings are TensorFlow tensors, so the result runs on the TensorFlow
    backend only; on JAX or PyTorch, vectorise in the input pipeline and call
    the peer on the token ids.

    Args:
        peer: a text peer taking `(batch, sequence_length)` token ids.
        vectorizer: an adapted `TextVectorization` with `output_mode="int"`
            and `output_sequence_length` equal to the peer's length.
        name: model name; defaults to `<peer name>_strings`.

    Returns:
        A functional `keras.Model` from a `(batch,)` string tensor to logits.

    Raises:
        ValueError: another backend than TensorFlow, or a vectoriser that is
            not an int-mode `TextVectorization` of the peer's length.

    Example (TensorFlow; `x_train` an array of strings):

        vectorizer = keras.layers.TextVectorization(output_sequence_length=256)
        vectorizer.adapt(x_train)
        peer = fasttext((256,), 8, vectorizer.vocabulary_size())
        ...  # train the peer on vectorizer(x_train)
        model = with_vectorizer(peer, vectorizer)
        model.save("peer_strings.keras")
        restored = keras.saving.load_model("peer_strings.keras")
        restored.predict(np.array(["oil prices rose"], dtype=object))  # logits
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"with_vectorizer needs the TensorFlow backend (strings are TensorFlow tensors); "
            f"the backend is {keras.backend.backend()!r}. Vectorise in the input pipeline and "
            f"call the peer on token ids instead."
        )
    if not isinstance(vectorizer, layers.TextVectorization):
        checks.fail("vectorizer", vectorizer, "a keras.layers.TextVectorization")
    config = vectorizer.get_config()
    length = peer.input_shape[1] if len(peer.input_shape) == 2 else None
    if config["output_mode"] != "int" or config["output_sequence_length"] != length:
        checks.fail(
            "vectorizer",
            f"<TextVectorization output_mode={config['output_mode']!r}, "
            f"output_sequence_length={config['output_sequence_length']}>",
            f"a TextVectorization with output_mode='int' and output_sequence_length={length} "
            f"(the peer's input length)",
        )
    inputs = keras.Input(shape=(), dtype="string", name="text")
    outputs = peer(vectorizer(inputs))
    return keras.Model(inputs, outputs, name=name or f"{peer.name}_strings")
